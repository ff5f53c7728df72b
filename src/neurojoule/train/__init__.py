"""Orchestration: training loops and the demo."""
