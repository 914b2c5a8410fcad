"""Record every floor-policy call (observation in, decision out) of the pre-redesign engine.

Loaded through PYTHONPATH by the interpreter at start-up (also in the sidecar process); appends JSON lines
to $NPC_RECORD_DIR/<pid>.jsonl. For issue 28's replay test only; never committed as engine code."""
import dataclasses
import json
import os

_dir = os.environ.get("NPC_RECORD_DIR")


def _install():
    import npc_voice.model.turntaking as tt
    try:
        import npc_voice.model.duplex as dx
    except Exception:
        dx = None
    path = os.path.join(_dir, f"{os.getpid()}.jsonl")

    def write(rec):
        with open(path, "a") as f:
            f.write(json.dumps(rec, default=lambda x: x.item() if hasattr(x, "item") else repr(x)) + "\n")

    def cfg(self):
        return {k: (None if v == float("inf") else v) for k, v in dataclasses.asdict(self).items()}

    decide, project = tt.BaselineTurnPolicy.decide, tt.BaselineTurnPolicy.project

    def rec_decide(self, obs, accurate=True):
        out = decide(self, obs, accurate)
        write({"policy": "baseline", "method": "decide", "config": cfg(self), "obs": dataclasses.asdict(obs),
               "accurate": accurate, "result": out.value,
               "cue_min_inf": self.cue_min_s == float("inf")})
        return out

    def rec_project(self, obs):
        out = project(self, obs)
        write({"policy": "baseline", "method": "project", "config": cfg(self), "obs": dataclasses.asdict(obs),
               "result": out, "cue_min_inf": self.cue_min_s == float("inf")})
        return out

    tt.BaselineTurnPolicy.decide, tt.BaselineTurnPolicy.project = rec_decide, rec_project
    if dx is not None:
        ddecide = dx.DuplexPolicy.decide

        def rec_ddecide(self, out, obs, accurate=False, previous=None):
            res = ddecide(self, out, obs, accurate, previous)
            write({"policy": "duplex", "method": "decide", "config": cfg(self), "obs": dataclasses.asdict(obs),
                   "accurate": accurate, "out": None if out is None else dataclasses.asdict(out),
                   "previous": None if previous is None else dataclasses.asdict(previous), "result": res.value})
            return res

        dx.DuplexPolicy.decide = rec_ddecide


if _dir:
    import importlib.abc
    import sys

    class _Hook(importlib.abc.MetaPathFinder):
        done = False

        def find_spec(self, name, path, target=None):
            if name == "npc_voice.engine.session" and not _Hook.done:
                _Hook.done = True
                sys.meta_path.remove(self)
                import importlib
                import npc_voice.model.turntaking  # noqa: F401
                _install()
            return None

    sys.meta_path.insert(0, _Hook())
