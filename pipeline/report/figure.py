"""What every plot of the report shares: matplotlib (Agg, imported here only), the style, and the
figure inlined as a base64 PNG. plots.py, compression_plots.py and int8_layers.py draw with it."""
from __future__ import annotations

import base64
import io
from dataclasses import dataclass

# Labels are user text (model and file names): never let a '$' switch matplotlib into math mode.
STYLE = {"text.parse_math": False, "font.size": 9, "axes.grid": True, "grid.alpha": 0.3}


@dataclass(frozen=True)
class Plot:
    key: str
    title: str
    caption: str
    png_data_uri: str


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png(fig) -> str:
    buffer = io.BytesIO()
    # No 'Software' metadata: the same report.json gives the same bytes.
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    pyplot().close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
