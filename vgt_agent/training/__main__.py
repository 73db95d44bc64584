"""`python -m vgt_agent.training sft|rl ...`: `vgt train` as a module, so `accelerate launch -m` can start it
on every GPU (a console script path is not always a Python file, e.g. under pyenv shims)."""

from vgt_agent.cli.train import app

if __name__ == "__main__":
    app(prog_name="vgt train")
