"""The ``pre-receive`` hook the stand-in installs in every bare repository: GitLab's checks
of the branches a push updates (``Gitlab::Checks::BranchCheck``, which GitLab runs from its
own pre-receive hook), so that a refused update shows in git as GitLab's does, over HTTP and
SSH alike::

    remote: GitLab: You are not allowed to push code to protected branches on this project.
     ! [remote rejected] main -> main (pre-receive hook declined)

It is a POSIX sh script because it runs as the SSH login user ``git``, who may not be able
to run the stand-in's Python. It reads the project's protected branch patterns from the file
``PROTECTED_BRANCHES`` in the repository, one a line; GitLab's only wildcard, ``*``, matches
any characters, ``/`` too, as an sh ``case`` pattern does. Who may push to a protected branch
comes from the environment: ``MAY_PUSH_PROTECTED`` non-empty, which git over HTTP sets for
Maintainers and above (GitLab's default "Allowed to push and merge: Maintainers"). sshd passes
no such variable, so a deploy key never may (GitLab's default: deploy keys must be allowed
explicitly). Nobody may force-push to a protected branch or delete one with git, nor delete
the default branch, as on GitLab by default.
"""

from __future__ import annotations

#: the patterns file, in the bare repository, and the variable, as the script names them
PROTECTED_BRANCHES = "gitlab-protected-branches"
MAY_PUSH_PROTECTED = "STANDIN_MAY_PUSH_PROTECTED"

PRE_RECEIVE = """\
#!/bin/sh
# stdin: "<old id> <new id> <ref>" for each ref the push updates; exit 1 refuses the push
may_push_protected=$STANDIN_MAY_PUSH_PROTECTED
default=$(git symbolic-ref --short HEAD)

blank() {
    case $1 in *[!0]*) return 1 ;; esac
}

protected() {
    while IFS= read -r pattern; do
        case $1 in $pattern) return 0 ;; esac
    done <gitlab-protected-branches
    return 1
}

refuse() {
    echo "GitLab: $1" >&2
    exit 1
}

check() {
    if blank "$2" && [ "$3" = "$default" ]; then
        refuse "The default branch of a project cannot be deleted."
    fi
    protected "$3" || return 0
    if ! blank "$1" && ! blank "$2" && ! git merge-base --is-ancestor "$1" "$2"; then
        refuse "You are not allowed to force push code to a protected branch on this project."
    fi
    if blank "$1"; then
        [ -n "$may_push_protected" ] || refuse "You are not allowed to create protected branches on this project."
    elif blank "$2"; then
        [ -n "$may_push_protected" ] || refuse "You are not allowed to delete protected branches from this \
project. Only a project maintainer or owner can delete a protected branch."
        refuse "You can only delete protected branches using the web interface."
    else
        [ -n "$may_push_protected" ] || refuse "You are not allowed to push code to protected branches on this project."
    fi
}

while read -r old new ref; do
    case $ref in refs/heads/*) check "$old" "$new" "${ref#refs/heads/}" ;; esac
done
"""
