"""Weight files: this project's checkpoints and Matterport's Keras .h5."""
