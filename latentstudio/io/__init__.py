"""Reading and writing model files. Nothing here ever executes code from a file."""
from latentstudio.io.errors import ModelLoadError
from latentstudio.io.loader import default_device, load_model, load_networks
from latentstudio.io.native import save_native

__all__ = ["ModelLoadError", "default_device", "load_model", "load_networks", "save_native"]
