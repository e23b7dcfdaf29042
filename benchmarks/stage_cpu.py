"""CPU seconds of each stage's unit at the default config's sizes, one thread, in one process.

CPU time (getrusage) rather than wall time, so that the default run's total can be
extrapolated on a shared, loaded machine (contention still inflates it somewhat). Run it
twice with different step counts and take the per-step cost from the difference (the
fixed part: corpus packing, trainer set-up, exports):

    python benchmarks/stage_cpu.py 20 50 4      # pretraining, SFT and RL steps
    python benchmarks/stage_cpu.py 60 150 12

Prints one JSON object: CPU seconds of the corpus, the data sets, pretraining, SFT, one
GRPO fork, the evaluation of one checkpoint on the reported and on the validation
splits, one reference SVD and one analysis. Works in a temporary folder.
"""
import json, os, resource, sys, tempfile
import torch
torch.set_num_threads(1)
W = tempfile.mkdtemp(prefix="stage_cpu-")
import yaml
from rlheals.config import validate
cfg = validate(yaml.safe_load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "config.yaml"))))
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF); return r.ru_utime + r.ru_stime
out = {}
from rlheals.atomic import write_jsonl
from rlheals.data.corpus import CorpusOptions, build_corpus
from rlheals.data.splits import SET_NAMES, write_all
t = cpu(); write_jsonl(f"{W}/corpus.jsonl", build_corpus(CorpusOptions(size=cfg["pretrain"]["corpus_size"], seed=0))); out["corpus"] = cpu() - t
paths = {n: f"{W}/{n}.jsonl" for n in SET_NAMES}
t = cpu(); write_all(paths, cfg["data"], 0, "compact"); out["data"] = cpu() - t
from rlheals.train.pretrain import PretrainOptions, pretrain
p = cfg["pretrain"]; N_PRE = int(sys.argv[1])
t = cpu()
pretrain(cfg["model"]["tiny"], f"{W}/corpus.jsonl", f"{W}/base", f"{W}/pre.csv", f"{W}/run_pre",
         PretrainOptions(steps=N_PRE, batch_size=p["batch_size"], lr=p["lr"], warmup_steps=min(p["warmup_steps"], N_PRE - 1), max_length=p["max_length"], seed=0, device="cpu", threads=1))
out["pretrain_steps"] = N_PRE; out["pretrain"] = cpu() - t; print(out, flush=True)
from rlheals.train.sft import SFTOptions, train_sft
s = {k: v for k, v in cfg["sft"].items() if k != "steps"}; N_SFT = int(sys.argv[2])
t = cpu()
train_sft(f"{W}/base", {"train": paths["sft_train"], "heldout_id": paths["sft_heldout_id"], "heldout_ood": paths["sft_heldout_ood"]},
          N_SFT, f"{W}/sft", f"{W}/run_sft", SFTOptions(**s, seed=0, device="cpu", threads=1))
out["sft_steps"] = N_SFT; out["sft"] = cpu() - t; print(out, flush=True)
from rlheals.train.rl import RLOptions, train_rl
r = {k: v for k, v in cfg["rl"].items() if k not in ("fork_from", "algorithms", "steps")}; N_RL = int(sys.argv[3])
r["save_every"] = N_RL
t = cpu()
train_rl(f"{W}/sft", paths["rl_prompts"], [N_RL], [f"{W}/rl"], f"{W}/rl.csv", f"{W}/run_rl", RLOptions(algo="grpo", **r, seed=0, device="cpu", threads=1))
out["rl_steps"] = N_RL; out["rl"] = cpu() - t; print(out, flush=True)
from rlheals.evaluation.evaluate import EvalOptions, evaluate_checkpoint
opts = EvalOptions.from_config(cfg["evaluation"], "compact", 0)
t = cpu(); evaluate_checkpoint(f"{W}/rl", {"id": paths["eval_id"], "ood": paths["eval_ood"]}, opts, f"{W}/s.csv", f"{W}/r.jsonl", device="cpu"); out["eval_report"] = cpu() - t
t = cpu(); evaluate_checkpoint(f"{W}/rl", {"val_id": paths["val_id"], "val_ood": paths["val_ood"]}, opts, f"{W}/s2.csv", f"{W}/r2.jsonl", device="cpu"); out["eval_val"] = cpu() - t
from rlheals.svd.analysis import analyze, save_reference
os.environ["RLHEALS_SVD_THREADS"] = "1"
m = cfg["analysis"]["matrices"]
t = cpu(); save_reference(f"{W}/base", m, f"{W}/ref.npz", "cpu"); out["reference_svd"] = cpu() - t
t = cpu(); analyze(f"{W}/rl", f"{W}/base", 16, m, {}, "cpu", cache=f"{W}/ref.npz"); out["analyze"] = cpu() - t
print(json.dumps(out), flush=True)
