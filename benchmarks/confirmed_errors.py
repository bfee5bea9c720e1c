"""Label errors in the MNIST and CIFAR-10 test sets that people confirmed: the reference that
benchmarks/datacheck_confirmed.py measures `convtrain data check --labels` against. Reference data,
not part of the package, read once for a final figure after the check's settings were chosen on
planted flips (benchmarks/datacheck_planted.py testsplit).

Northcutt, Athalye and Mueller (2021), "Pervasive Label Errors in Test Sets Destabilize Machine
Learning Benchmarks", had five Mechanical Turk workers look at each of their confident-learning
candidates. The indices are positions in the official test files, in their order (as convtrain
reads them), from their published results, github.com/cleanlab/label-errors, files
mturk/mnist_mturk.json and mturk/cifar10_mturk.json (commit 6d5d6b31a13216290afc40e5c6319399c4d15c06).
Confirmed = fewer than 3 of the 5 workers chose the given label, which gives the paper's counts:
15 of MNIST's 100 candidates and 54 of CIFAR-10's 275 (for CIFAR-10: 18 where a majority chose the
paper's suggested label, 4 where most chose neither, 32 without agreement).
"""

# (test index, given label, label the paper suggested) of the 15 confirmed MNIST test label errors.
MNIST_CONFIRMED = (
    (947, 8, 9),
    (1621, 0, 6),
    (1901, 9, 4),
    (2130, 4, 9),
    (2462, 2, 0),
    (2597, 5, 3),
    (2654, 6, 1),
    (3520, 6, 4),
    (3558, 5, 0),
    (5937, 5, 3),
    (6651, 0, 6),
    (6783, 1, 6),
    (8527, 4, 9),
    (9679, 6, 3),
    (9729, 5, 6),
)
# The paper's 100 confident-learning candidates (MNIST test indices), confirmed or not.
MNIST_CANDIDATES = (
    247, 259, 321, 340, 445, 449, 582, 619, 717, 720, 726, 740, 810, 938, 947, 1014, 1033, 1039,
    1112, 1119, 1226, 1232, 1299, 1364, 1393, 1530, 1621, 1681, 1709, 1901, 2035, 2043, 2109, 2130,
    2135, 2182, 2293, 2380, 2406, 2447, 2454, 2462, 2597, 2654, 2836, 2896, 2921, 2927, 2939, 3060,
    3073, 3206, 3422, 3503, 3520, 3558, 3597, 3767, 3778, 3850, 3869, 3906, 4007, 4176, 4201, 4207,
    4224, 4497, 4639, 4783, 4823, 4860, 4874, 4876, 4880, 4956, 4978, 5887, 5937, 5955, 6505, 6572,
    6576, 6597, 6625, 6651, 6783, 7434, 7842, 8094, 8408, 8527, 9009, 9634, 9642, 9664, 9679, 9729,
    9755, 9888,
)  # fmt: skip

# (test index, given label, label the paper suggested) of the 54 confirmed CIFAR-10 test label errors.
CIFAR10_CONFIRMED = (
    (165, 4, 2), (792, 3, 5), (882, 3, 2), (1227, 3, 5), (1300, 4, 3), (1684, 1, 8), (1718, 0, 8), (1969, 1, 9),
    (2010, 7, 2), (2128, 4, 6), (2232, 0, 3), (2405, 3, 6), (2532, 0, 1), (2592, 2, 4), (2804, 3, 5), (2840, 3, 4),
    (2940, 3, 0), (3113, 3, 6), (3168, 9, 8), (3183, 3, 5), (3192, 5, 4), (3490, 0, 8), (3600, 4, 3), (3753, 4, 3),
    (3977, 3, 6), (4055, 1, 0), (4198, 8, 0), (4614, 3, 5), (4643, 3, 2), (4794, 4, 2), (4910, 8, 9), (4965, 3, 4),
    (5166, 9, 7), (5191, 3, 5), (5211, 7, 4), (5468, 5, 3), (5632, 3, 5), (5690, 7, 4), (5882, 1, 9), (5960, 2, 3),
    (6522, 9, 1), (6792, 3, 9), (6877, 0, 8), (6966, 0, 8), (7311, 1, 9), (7657, 2, 7), (7846, 6, 3), (8058, 4, 7),
    (8296, 5, 3), (8620, 3, 2), (9227, 1, 9), (9352, 1, 9), (9643, 9, 0), (9793, 2, 5),
)  # fmt: skip
# The paper's 275 confident-learning candidates (CIFAR-10 test indices), confirmed or not.
CIFAR10_CANDIDATES = (
    20, 52, 57, 58, 61, 158, 164, 165, 201, 247, 370, 384, 422, 518, 531, 672,
    680, 683, 710, 739, 770, 776, 792, 811, 882, 888, 914, 916, 956, 1150, 1163, 1227,
    1230, 1236, 1248, 1300, 1303, 1321, 1325, 1429, 1495, 1501, 1552, 1684, 1685, 1718, 1723, 1731,
    1739, 1757, 1759, 1796, 1871, 1884, 1934, 1935, 1938, 1939, 1969, 2010, 2034, 2036, 2061, 2101,
    2128, 2142, 2165, 2176, 2186, 2232, 2271, 2293, 2299, 2331, 2355, 2386, 2405, 2453, 2473, 2494,
    2495, 2521, 2530, 2532, 2542, 2592, 2599, 2650, 2754, 2804, 2810, 2840, 2895, 2912, 2940, 2948,
    3036, 3059, 3084, 3113, 3160, 3164, 3168, 3183, 3192, 3218, 3236, 3443, 3450, 3490, 3524, 3574,
    3582, 3594, 3600, 3615, 3631, 3645, 3658, 3669, 3680, 3753, 3755, 3789, 3799, 3821, 3828, 3867,
    3953, 3957, 3977, 4023, 4055, 4077, 4140, 4152, 4169, 4198, 4302, 4315, 4442, 4470, 4476, 4485,
    4527, 4528, 4614, 4643, 4686, 4749, 4750, 4754, 4794, 4861, 4910, 4931, 4942, 4964, 4965, 5085,
    5151, 5166, 5191, 5205, 5211, 5218, 5229, 5352, 5388, 5416, 5468, 5548, 5570, 5632, 5642, 5690,
    5809, 5835, 5860, 5881, 5882, 5908, 5930, 5960, 6008, 6016, 6064, 6083, 6151, 6180, 6299, 6419,
    6513, 6522, 6559, 6637, 6669, 6732, 6753, 6774, 6786, 6792, 6853, 6869, 6877, 6962, 6966, 6980,
    6993, 7000, 7005, 7040, 7059, 7112, 7150, 7274, 7280, 7311, 7384, 7400, 7491, 7644, 7657, 7685,
    7839, 7846, 7887, 7893, 7906, 7967, 8014, 8058, 8128, 8222, 8236, 8269, 8276, 8295, 8296, 8385,
    8451, 8457, 8521, 8577, 8580, 8598, 8620, 8735, 8743, 8932, 8943, 9039, 9082, 9128, 9225, 9227,
    9260, 9292, 9352, 9403, 9415, 9467, 9518, 9573, 9609, 9643, 9665, 9678, 9704, 9730, 9786, 9793,
    9794, 9819, 9982,
)  # fmt: skip
# dataset -> (confirmed, candidates)
CONFIRMED_ERRORS = {
    "mnist": (MNIST_CONFIRMED, MNIST_CANDIDATES),
    "cifar10": (CIFAR10_CONFIRMED, CIFAR10_CANDIDATES),
}
