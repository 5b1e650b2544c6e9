"""Explorer figures: sorted, highlighted mixture bars and one colour per entry everywhere."""
import numpy as np

from workbench.ui.map import colors_for_values
from workbench.lines.softprompt.figures import OTHER_COLOR, atlas_tooltips, entry_colormap, entry_colors, mixture_bar_figure


def test_bars_are_sorted_with_the_top_entries_in_their_colours():
    w = np.array([0.1, 0.4, 0.05, 0.3, 0.15])
    fig = mixture_bar_figure(w, top=2, meanings=[["a"], ["b"], ["c"], ["d"], ["e"]])
    bar = fig.data[0]
    assert list(bar.x) == ["e1", "e3", "e4", "e0", "e2"]
    assert np.allclose(bar.y, [0.4, 0.3, 0.15, 0.1, 0.05])
    colors = entry_colors(5)
    assert list(bar.marker.color) == [colors[1], colors[3], OTHER_COLOR, OTHER_COLOR, OTHER_COLOR]
    assert "entry 1<br>weight 40.0%<br>b" == bar.hovertext[0]


def test_entry_colormap_gives_each_entry_its_own_colour():
    for k in (1, 7, 64, 100):
        colors = entry_colors(k)
        assert len(colors) == k and len(set(colors)) == min(k, 74)
        cmap = entry_colormap(k)
        ks = np.arange(k)
        assert colors_for_values(ks, cmap, 0, max(k - 1, 1)) == colors


def test_atlas_tooltips():
    tips = atlas_tooltips(np.array([2, 0]), np.array([0.41, 0.9]), [["x"], ["y"], ["Lyon, France", "Lille, France"]])
    assert tips == ["entry 2 (41.0%): Lyon, France / Lille, France", "entry 0 (90.0%): x"]
