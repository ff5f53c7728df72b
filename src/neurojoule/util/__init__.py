"""Small shared utilities at the bottom of the package (every layer may import them; they
import nothing from the project): atomic file writes and wall-clock timing."""
