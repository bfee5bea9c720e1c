"""Data checks: broken files, duplicates and leaks, label issues, class balance (`convtrain data check`).

import convtrain
result = convtrain.check("mnist", split="test", labels=True, out="checks/mnist")
print(result.summary["labels"]["counts"])
"""

from convtrain.datacheck.audit import CheckResult, check

__all__ = ["CheckResult", "check"]
