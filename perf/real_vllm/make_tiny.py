"""Build a tiny random-weight Llama (2 layers, byte-level BPE tokenizer) at argv[1]; offline, CPU only.

Unlike the reference recipe, generation_config.json makes greedy decoding and 32 new tokens the
server's defaults, and the end-of-sequence row of the output layer is zero: with greedy decoding
its logit (0) wins only if every other logit is negative, so streams run to max_tokens and the
gateway A/B compares streams of the same length.
"""
import json
import os
import sys

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

out = sys.argv[1]
corpus = ["The quick brown fox jumps over the lazy dog. " * 4, "Hello world, tiny vLLM smoke test. 0123456789",
          "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ !?.,;:'\"()[]{}<>-_=+/*&^%$#@~`|\\"] * 50
tok = Tokenizer(models.BPE(unk_token=None))
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=512, special_tokens=["<s>", "</s>", "<pad>"],
                                                    initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
ftok = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
ftok.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                      "{% if add_generation_prompt %}assistant: {% endif %}")
ftok.save_pretrained(out)
cfg = LlamaConfig(vocab_size=len(ftok), hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=64, max_position_embeddings=2048,
                  bos_token_id=ftok.bos_token_id, eos_token_id=ftok.eos_token_id, pad_token_id=ftok.pad_token_id,
                  torch_dtype="bfloat16", tie_word_embeddings=False)
torch.manual_seed(0)
model = LlamaForCausalLM(cfg).to(torch.bfloat16)
with torch.no_grad():
    model.lm_head.weight[ftok.eos_token_id].zero_()
model.save_pretrained(out)
with open(os.path.join(out, "generation_config.json"), "w") as fh:
    json.dump({"bos_token_id": ftok.bos_token_id, "eos_token_id": ftok.eos_token_id,
               "pad_token_id": ftok.pad_token_id, "do_sample": False, "temperature": 0.0,
               "max_new_tokens": 32}, fh)
print("tiny model written to", out, "vocab", len(ftok))
