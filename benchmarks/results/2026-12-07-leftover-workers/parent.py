import sys

from tinyimagenet_resnet.tasks.protocol_supervise import start

rec = {}
args = [
    "-m",
    "hydra/launcher=joblib",
    "hydra.launcher.n_jobs=2",
    "optim.lr=1e-3,3e-3",
    f"data.path={sys.argv[1]}",
    "model.widths=[8,8,8]",
    "trainer.epochs=200",
    "data.batch_size=16",
]
p = start(args, rec, None)
print("pgid", rec["pgid"], rec["token"], flush=True)  # before.sh ran it without the token
p.wait()
