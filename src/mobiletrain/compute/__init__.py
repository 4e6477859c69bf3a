"""Training, export and evaluation of image classifiers.

Only :mod:`mobiletrain.compute.keras` imports TensorFlow; every other module here is
numpy/Pillow/LiteRT only so the API process can use it without loading TensorFlow.
"""
