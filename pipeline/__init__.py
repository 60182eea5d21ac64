"""Build Sluice's default models: data, fine-tune, distil, export, quantize, evaluate, cards.

Heavy libraries (torch, transformers, onnxruntime) are imported inside the functions that need
them, so ``import pipeline`` stays cheap for the server's CLI.
"""
