"""PySide6 widgets. The GUI never computes: it edits recipes and asks the engine to render."""
