"""The audio plugin follows the visionsuite task contract (run after `pip install -e .`)."""

from visionsuite.testing import check_task


def test_audio_task_follows_the_contract(tmp_path):
    result = check_task("audio", image_size=32, workdir=tmp_path,
                        classes=("down", "tone", "up"))
    assert result["predictions"] > 0
