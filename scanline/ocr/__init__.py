"""OCR: image checks, the engines (keras-ocr, tesseract) and the batching service.

Only the ``ocr`` and ``ocr-jobs`` functions import this package; keras-ocr and TensorFlow
are imported inside the keras engine, so nothing else pays for them.
"""
