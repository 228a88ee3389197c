"""The fork launcher's job runner does what Hydra's run_job does: same task config, job dir and .hydra files."""

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.utils import JobStatus, run_job, setup_globals
    from hydra.types import HydraContext, RunMode
    from hydra._internal.callbacks import Callbacks
    from omegaconf import OmegaConf

    from qframe.app import conf_dir
    from qframe.launch.compose import JobComposer
    from qframe.launch.job import run_owned_job

    which, sweep_dir, out = sys.argv[1:4]
    seen = {}

    def task(cfg):
        hydra = HydraConfig.get()
        seen.update(
            config=OmegaConf.to_container(cfg, resolve=True),
            struct=OmegaConf.is_struct(cfg),
            has_hydra="hydra" in cfg,
            output_dir=hydra.runtime.output_dir,
            job_num=hydra.job.num,
            env=os.environ.get("QFRAME_TRIAL_NUMBER"),
            cwd=os.getcwd(),
        )
        return 1.5

    setup_globals()
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration(
            "config", ["tuner=lightgbm", f"hydra.sweep.dir={sweep_dir}"], RunMode.MULTIRUN
        )
        HydraConfig.instance().set_config(master)
        context = HydraContext(config_loader=loader, callbacks=Callbacks(master))
        overrides = ["model.learning_rate=0.05", "tuner=lightgbm", "++hydra.job.env_set.QFRAME_TRIAL_NUMBER='7'"]
        config = JobComposer(loader, master).plan(overrides).config(7, in_place=False)
        if which == "hydra":
            ret = run_job(
                hydra_context=context,
                task_function=task,
                config=config,
                job_dir_key="hydra.sweep.dir",
                job_subdir_key="hydra.sweep.subdir",
            )
        else:
            ret = run_owned_job(context, task, config)
    seen.update(status=ret.status == JobStatus.COMPLETED, value=ret.return_value, overrides=ret.overrides)
    seen["env_after"] = os.environ.get("QFRAME_TRIAL_NUMBER")
    json.dump(seen, open(out, "w"))
    """
)


def run(tmp_path, which):
    sweep = tmp_path / which
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    out = tmp_path / f"{which}.json"
    proc = subprocess.run(
        [sys.executable, str(script), which, str(sweep), str(out)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return sweep, json.loads(out.read_text())


def test_owned_job_matches_hydras_run_job(tmp_path):
    hydra_dir, theirs = run(tmp_path, "hydra")
    owned_dir, ours = run(tmp_path, "owned")
    for seen, sweep in ((theirs, hydra_dir), (ours, owned_dir)):
        assert seen["output_dir"] == str(sweep / "7")
        seen["output_dir"] = "<job dir>"
    assert ours == theirs
    assert ours["status"] and ours["value"] == 1.5 and ours["job_num"] == 7 and ours["env"] == "7"
    assert ours["struct"] and not ours["has_hydra"] and ours["env_after"] is None
    assert ours["config"]["model"]["learning_rate"] == 0.05
    for name in ("config.yaml", "overrides.yaml", "hydra.yaml"):
        expected = (hydra_dir / "7" / ".hydra" / name).read_text().replace(str(hydra_dir), "<sweep>")
        assert (owned_dir / "7" / ".hydra" / name).read_text().replace(str(owned_dir), "<sweep>") == expected, name
    assert (owned_dir / "7" / "qframe.log").is_file()


def test_the_fast_path_only_on_the_verified_hydra_and_when_asked():
    from qframe.launch.hydra_compat import VERIFIED_HYDRA, choose_path, installed_hydra

    assert choose_path(True, VERIFIED_HYDRA).fast
    other = choose_path(True, "1.4.0")
    assert not other.fast and "1.4.0" in other.why and VERIFIED_HYDRA in other.why
    off = choose_path(False, VERIFIED_HYDRA)
    assert not off.fast and off.why == "hydra.launcher.fast_path=false"
    # the Hydra this project pins is the one the fast path was verified on (constraints.txt)
    assert installed_hydra() == VERIFIED_HYDRA and choose_path().fast


def test_job_outcome_reads_a_failure_without_raising_on_either_path(capfd):
    from hydra.core.utils import JobReturn, JobStatus

    from qframe.launch.hydra_compat import job_outcome

    failure = RuntimeError("planted")
    failed, completed = JobReturn(status=JobStatus.FAILED), JobReturn(status=JobStatus.COMPLETED)
    failed.return_value, completed.return_value = failure, 1.5
    for fast in (True, False):
        assert job_outcome(failed, fast) == (False, failure)
        assert job_outcome(completed, fast) == (True, 1.5)
    # only Hydra's public accessor writes its line
    assert capfd.readouterr().err.count("Error executing job") == 1
