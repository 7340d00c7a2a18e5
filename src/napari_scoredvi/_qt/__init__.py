"""The Qt dock widgets (one widget a file); everything that is not Qt glue lives in the headless layers."""
