"""The slice pipeline: stacks and volumes denoised slice by slice, runs into a store, resume, clusters."""
