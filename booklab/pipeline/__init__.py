"""A deployment's pipeline: the five steps and what they use (GitLab, git, the build, the launch, routes)."""
