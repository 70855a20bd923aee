"""The StyleGAN2 trainer: a library, a CLI and a separate process the GUI watches."""
