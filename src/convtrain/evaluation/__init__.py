"""Scoring a model and a run: a split's logits and sums (scoring.py), metrics, predictions, export,
explanations (explain/) and the report (report/)."""
