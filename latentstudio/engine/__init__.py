"""Everything the GUI does, without Qt: recipes, rendering, directions, analysis, export."""
