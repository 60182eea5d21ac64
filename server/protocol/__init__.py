"""Wire formats, free of any web framework: KServe v2 JSON + binary tensors, and classify."""
