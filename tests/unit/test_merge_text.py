"""What mergebot writes into history, and how it reads git's answers (no repository needed)."""

from __future__ import annotations

from mergebot.config import MergeMethod
from mergebot.git.credentials import redact
from mergebot.git.merge import Candidate, PushStatus, classify_push, commit_message, conflict_files

SHA = "0123456789abcdef0123456789abcdef01234567"


def test_merge_message_names_slug_sha_and_approvers() -> None:
    text = commit_message(Candidate("pr-9", "feature/x", SHA, ("alice", "bob")), "main",
                          MergeMethod.MERGE)  # fmt: skip
    lines = text.splitlines()
    assert lines[0] == "Merge pr-9 (0123456) into main"
    assert f"Integrates branch feature/x at {SHA}." in lines
    assert "Approved by alice, bob." in lines
    assert lines[-3:] == [f"Mergebot-Sha: {SHA}", "Approved-by: alice", "Approved-by: bob"]
    assert "Mergebot-Candidate: pr-9" in lines


def test_squash_message_lists_subjects_and_keeps_untrusted_text_on_one_line() -> None:
    text = commit_message(
        Candidate("pr-9", "feature/x", SHA), "main", MergeMethod.SQUASH,
        ["first", "second\x1b[31m red\nnewline"],
    )  # fmt: skip
    assert text.splitlines()[0] == "pr-9: squash feature/x (0123456) into main"
    assert "* first" in text
    assert "* second [31m red newline" in text
    assert "Approved" not in text.split("Mergebot-")[0]


def test_conflict_files_from_merge_tree_output() -> None:
    out = "4b825dc642cb6eb9a060e54bf8d69288fbee4904\nREADME.md\nsrc/a.py\nREADME.md\n"
    assert conflict_files(out) == ["README.md", "src/a.py"]


def test_push_classification() -> None:
    assert classify_push(0, "", "").status is PushStatus.OK
    stale = classify_push(1, "To /r.git\n!\tabc:refs/heads/main\t[rejected] (stale info)\nDone", "")
    assert stale.status is PushStatus.STALE
    assert stale.message == "[rejected] (stale info)"
    hook = classify_push(1, "!\tabc:refs/heads/main\t[remote rejected] (pre-receive hook declined)",
                         "")  # fmt: skip
    assert hook.status is PushStatus.REJECTED
    assert "hook declined" in hook.message
    network = classify_push(128, "", "fatal: unable to access remote\n")
    assert network.status is PushStatus.REJECTED
    assert network.message == "fatal: unable to access remote"


def test_redact_removes_url_user_info_and_known_secrets() -> None:
    text = "fatal: could not read from https://bot:tok@github.com/a/b.git (token hunter2)"
    assert redact(text, ["hunter2"]) == (
        "fatal: could not read from https://***@github.com/a/b.git (token ***)"
    )
