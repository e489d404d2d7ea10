"""Save back: a notebook's changed files committed and pushed to GitLab as the user."""
