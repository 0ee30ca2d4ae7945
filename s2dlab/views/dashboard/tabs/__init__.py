"""One module per tab of the dashboard, each building its components and wiring its own events:

    header.py      the run / stage / snapshot pickers above the tabs, and reloading the run list
    token.py       Token view: a rollout coloured token by token, its export, counterfactual branches
    rollouts.py    Rollouts: a snapshot's table; a row opens in the token view
    stages.py      Stages: the run's summary.json rendered, C1/C2, curves and their drill-down
    lens.py        Token lens: one rollout under every checkpoint pair
    estimators.py  Estimators: k1 / k2 / k3 and top-k beside the exact KLs
    compare.py     Compare: one problem across stages
    live.py        Live: a typed problem sampled and scored now
    map.py         Map: a C1 x C2 map's figure and cells, from its map.json (`s2dlab map`)

Each tab is a class built inside its `gr.Tab` (its components) and then `wire()`d (its events), so that a tab can
open another (a rollout row opens the token view) whatever the order the tabs are built in.
"""
