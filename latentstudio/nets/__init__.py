"""The networks as plain ``torch.nn.Module``s with the NVlabs parameter names."""
