"""Run folders: training a config into a folder, and reading it back."""
