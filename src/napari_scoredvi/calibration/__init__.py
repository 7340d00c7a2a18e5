"""Noise calibration (photon transfer): the camera gain and read noise measured from one frame."""
