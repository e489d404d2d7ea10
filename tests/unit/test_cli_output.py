"""What the CLI prints holds other people's branch names and a repository's build output:
no character of it reaches the terminal as a command."""

from booklab.cli import printable


def test_terminal_commands_are_printed_as_their_escapes_and_text_stays_as_it_is():
    hostile = "main\x1b]52;c;ZWNobyBvd25lZA==\x07\u009b2J\u202egnp.exe\x00"
    assert printable(hostile) == "main\\x1b]52;c;ZWNobyBvd25lZA==\\x07\\x9b2J\\u202egnp.exe\\x00"
    assert printable("Log of été, 日本語\tcolumns\nnext line") == "Log of été, 日本語\tcolumns\nnext line"
