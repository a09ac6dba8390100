# usage: run.sh LABEL [PYTHONPATH]
cd /tmp/eta && rm -rf $1 && mkdir $1 && cd $1
export PATH=/work/main/.venv/bin:$PATH HF_HUB_OFFLINE=1 XDG_CACHE_HOME=/tmp/eta/xdg
[ -n "$2" ] && export PYTHONPATH=$2
s=$(date +%s.%N)
python -m tinyimagenet_resnet.main data.path=/work/shared/tiny-imagenet 'data.train_files=data/train-00000-*' 'data.val_files=data/valid-00000-*' data.val_subset=1000 model.widths=[16,32,64] data.batch_size=64 trainer.epochs=4 optim.lr=3e-3 data.num_workers=1 trainer.train_sizes=[16,32,64] trainer.train_size_fractions=[0.6,0.3,0.1] trainer.val_every_n_epochs=4 trainer.progress_bar=false trainer.progress_every_s=10 > console.txt 2>&1
echo "rc=$? wall=$(echo "$(date +%s.%N) - $s" | bc) $(uptime)" > wall.txt
