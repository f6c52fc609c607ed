#!/usr/bin/env python
"""Fine-tune with very large dropout on source domains and measure the held-out domains (DomainBed protocol).

One job = one (dataset, held-out domain set, seed). Examples:

    # no recipe: the defaults, digits with mnist held out, embedded ImageNet EfficientNet-Lite0
    python examples/run_ood.py --output_dir runs/bigdrop --dropout_rate 0.9

    # a recipe, with overrides
    python examples/run_ood.py examples/configs/styles.yaml --dropout_rate 0.0 --output_dir runs/styles-erm

    # a paper recipe on 2 processes
    accelerate launch --multi_gpu --num_processes 2 examples/run_ood.py examples/configs/pacs_bigdrop.yaml \\
        --data_dir /data/domainbed/PACS --test_domains S --output_dir runs/pacs-S

    # leave-one-domain-out over every domain in turn (one sub-folder per held-out domain)
    python examples/run_ood.py --test_domains all --output_dir runs/lodo

Arguments: a recipe (YAML or JSON) as the first argument, then flags that override it (`--help` lists them all).
Writes to `output_dir`: the selected model (safetensors + code for `trust_remote_code`), its image processor, the model
card `README.md` and, last, `results.json`. The same as `hf-bigdrop run`; the steps are in `hf_bigdrop.experiment`:
`parse_experiment_arguments` -> `run_experiments` (checks every argument, loads the splits, builds the model and the
trainer, trains, selects, writes the outputs).
"""

from hf_bigdrop.experiment.cli import main

if __name__ == "__main__":
    main(command="run")
