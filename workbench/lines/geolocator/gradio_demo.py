"""A Gradio geolocation demo: upload a photo -> top places with probabilities + a map.

The map is a static Blue Marble image (``render_prediction_map``), so the app needs no tile
server or CDN; it binds to 127.0.0.1. ``geolocate_image`` is the whole request handler, so
tests call it without starting a server.
"""
from __future__ import annotations

import os
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.lines.geolocator.predict import GeoPredictor
from workbench.paths import ASSETS

SAMPLES = ASSETS / "photos"


def geolocate_image(predictor: GeoPredictor, path: str | None, top_k: int = 5):
    """(top places {label: prob}, map image, markdown summary) for an uploaded file path.

    Raises ``gradio.Error`` with the one-line message for missing / unreadable images.
    """
    import gradio as gr

    if not path:
        raise gr.Error("upload a photo first (JPEG, PNG or WebP)")
    try:
        pred = predictor.predict(path, top_k=top_k, name=Path(path).name)
    except WorkbenchError as exc:
        raise gr.Error(str(exc)) from None
    from workbench.lines.geolocator.figures import render_prediction_map

    labels = {f"{place} (cell {token})": float(p)
              for place, token, p in zip(pred.cell_places, pred.tokens, pred.probs)}
    picture = render_prediction_map(pred.polygons, pred.probs, (pred.lat, pred.lon), width=720)
    text = (f"**Predicted:** {pred.place} ({pred.lat:.3f}, {pred.lon:.3f})  \n"
            f"top-{len(pred.probs)} cells hold {sum(pred.probs):.1%} of the probability; "
            f"latency {pred.latency_ms:.0f} ms")
    return labels, picture, text


def build_demo(predictor: GeoPredictor, top_k: int = 5):
    """The Gradio Blocks app (not launched)."""
    import gradio as gr

    examples = [[str(p)] for p in sorted(SAMPLES.glob("*.jpg"))]
    with gr.Blocks(title="Geo Workbench: where was this photo taken?") as demo:
        gr.Markdown(f"## Where was this photo taken?\nModel: `{predictor.source}` "
                    f"({predictor.n_cells} S2 cells)")
        with gr.Row():
            with gr.Column():
                image = gr.Image(type="filepath", label="Photo", sources=["upload"])
                button = gr.Button("Geolocate", variant="primary")
                if examples:
                    gr.Examples(examples, inputs=[image])
            with gr.Column():
                places = gr.Label(num_top_classes=top_k, label="Top places")
                summary = gr.Markdown()
        world = gr.Image(type="pil", label="Top cells (colour = probability), red dot = prediction")

        def run(path):
            return geolocate_image(predictor, path, top_k)

        button.click(run, inputs=[image], outputs=[places, world, summary])
        image.upload(run, inputs=[image], outputs=[places, world, summary])
    return demo


def launch_demo(predictor: GeoPredictor, port: int = 7860, top_k: int = 5, block: bool = True):
    """Serve the demo on http://127.0.0.1:<port> (never on a public interface or share link)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no phoning home offline
    demo = build_demo(predictor, top_k)
    demo.launch(server_name="127.0.0.1", server_port=port, share=False, inbrowser=False,
                prevent_thread_lock=not block, quiet=not block)
    return demo
