"""Implementation modules behind the public ones (rankgrad.objectives, .exact, .noisy, ...): not a public API."""
