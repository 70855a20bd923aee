"""Datasets: image folders and zip archives, and procedural portraits with known factors."""
