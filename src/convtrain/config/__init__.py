"""What a run is told: TrainConfig, one frozen dataclass (train_config.py), and the packaged recipes
(recipes/)."""
