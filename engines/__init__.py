"""Inference backends behind one narrow interface (see :mod:`engines.base`).

This package never imports :mod:`server`; heavy libraries (torch, onnxruntime, tensorrt)
are imported only inside their own backend module.
"""
