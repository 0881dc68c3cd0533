"""engines.redact: which names are secret, and what is left of a command line, an environment, a text."""
import pytest

from engines import redact


@pytest.mark.parametrize("name", ["--api-key", "--hf-token", "HF_TOKEN", "VLLM_API_KEY", "AWS_SECRET_ACCESS_KEY",
                                  "DB_PASSWORD", "--apikey", "HUGGING_FACE_HUB_TOKEN", "--client-secret"])
def test_these_names_are_secret(name):
    assert redact.name_is_secret(name)


@pytest.mark.parametrize("name", ["--max-num-batched-tokens", "--tokenizer", "--tokenizer-mode", "--ssl-keyfile",
                                  "TOKENIZERS_PARALLELISM", "--port", "CUDA_VISIBLE_DEVICES", "--kv-cache-dtype"])
def test_these_are_not(name):
    assert not redact.name_is_secret(name)


def test_argv_keeps_the_flag_and_hides_its_value_in_both_spellings():
    argv = ["vllm", "serve", "m", "--api-key", "A", "--hf-token=B", "--tokenizer", "t", "HF_TOKEN=C", "--port", "1"]
    assert redact.argv_redact(argv) == ["vllm", "serve", "m", "--api-key", "***", "--hf-token=***", "--tokenizer",
                                        "t", "HF_TOKEN=***", "--port", "1"]


def test_a_secret_flag_followed_by_another_flag_hides_nothing_else():
    assert redact.argv_redact(["--api-key", "--port", "8"]) == ["--api-key", "--port", "8"]


def test_env_and_text():
    assert redact.env_redact({"HF_TOKEN": "x", "CUDA_VISIBLE_DEVICES": "0"}) == {"HF_TOKEN": "***",
                                                                              "CUDA_VISIBLE_DEVICES": "0"}
    text = "args: {'api_key': 'A', 'model': 'm'} --api-key B HF_TOKEN=C Bearer D --max-num-batched-tokens 8192"
    assert redact.text_redact(text) == ("args: {'api_key': '***', 'model': 'm'} --api-key *** HF_TOKEN=*** "
                                        "Bearer *** --max-num-batched-tokens 8192")
