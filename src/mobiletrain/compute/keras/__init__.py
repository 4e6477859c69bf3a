"""TensorFlow/Keras model building, training and export.

The only part of mobiletrain that imports TensorFlow. Import its modules in the training
worker only; this package file itself stays cheap to import.
"""
