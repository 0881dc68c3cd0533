"""The plan of a `local` profile uses the registry's estimate from the folder's config.json and weights."""
import json

from models_registry.models import ModelProfile
from servers import planner

# The 2-layer Llama the real vLLM 0.26 run served (perf/real_vllm/make_tiny.py).
TINY_CONFIG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "dtype": "bfloat16",
               "hidden_size": 256, "head_dim": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
               "num_hidden_layers": 2, "intermediate_size": 512, "vocab_size": 408, "max_position_embeddings": 2048}


def test_a_tiny_local_model_gets_an_estimate_even_below_a_hundredth_of_a_gb(node, tmp_path, db):
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(TINY_CONFIG))
    (folder / "model.safetensors").write_bytes(b"\0" * 2_781_880)
    profile = ModelProfile.objects.create(name="tiny", source="local", local_path=str(folder), repo_id="",
                                          served_model_name="tiny", max_model_len=512, gpu_memory_utilization=0.3)
    need, source = planner.memory_need_gb(profile, node)
    assert need == 0.0 and source == "estimated from the weights and the KV cache for max_model_len"
    plan = planner.plan_start(node=node, profile=profile, gpu_memory_utilization=0.3)
    assert not any("No memory estimate" in note for note in plan.notes)
