"""Call recordings: the stereo WAV assembled from the Media Stream (caller left, agent
right), kept through a small storage interface with a retention period."""
