"""The editor's dark theme: Fusion style, one palette, a few named-label styles."""
from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

WINDOW = "#25272b"
BASE = "#1b1d21"
TEXT = "#e3e5e8"
DIM = "#9aa0a8"
ACCENT = "#4f8cd6"

STYLE_SHEET = f"""
QLabel#caption {{ color: {DIM}; font-size: 11px; }}
QLabel#groupTitle {{ color: {TEXT}; font-weight: 600; padding-top: 6px; }}
QLabel#notice {{ background: #4a3b16; color: #f3dfa6; padding: 6px 10px; }}
QDockWidget::title {{ background: #2d3035; padding: 5px 8px; }}
QTabWidget::pane {{ border: none; }}
QTabBar {{ qproperty-drawBase: 0; }}
QTabBar::tab {{ background: #2b2e33; color: {DIM}; border: none; padding: 6px 18px; margin-right: 1px; }}
QTabBar::tab:selected {{ background: #3a3e45; color: {TEXT}; }}
QTabBar::tab:hover {{ color: {TEXT}; }}
QStatusBar QLabel {{ color: {DIM}; padding: 0 8px; }}
QListWidget {{ background: {BASE}; border: none; }}
QListWidget::item:selected {{ background: {ACCENT}; color: white; border-radius: 3px; }}
"""


def apply_theme(app: QApplication) -> None:
    """A consistent dark look for the whole application."""
    app.setStyle("Fusion")
    palette = QPalette()
    colors = {
        QPalette.ColorRole.Window: WINDOW,
        QPalette.ColorRole.WindowText: TEXT,
        QPalette.ColorRole.Base: BASE,
        QPalette.ColorRole.AlternateBase: WINDOW,
        QPalette.ColorRole.ToolTipBase: BASE,
        QPalette.ColorRole.ToolTipText: TEXT,
        QPalette.ColorRole.Text: TEXT,
        QPalette.ColorRole.Button: "#33363c",
        QPalette.ColorRole.ButtonText: TEXT,
        QPalette.ColorRole.BrightText: "#ff6b6b",
        QPalette.ColorRole.Highlight: ACCENT,
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Link: ACCENT,
        QPalette.ColorRole.PlaceholderText: DIM,
    }
    for role, color in colors.items():
        palette.setColor(role, QColor(color))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#6b7078"))
    app.setPalette(palette)
    app.setStyleSheet(STYLE_SHEET)
