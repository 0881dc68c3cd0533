"""vLLM 0.33.0 metric families (names, HELP, label names, buckets) as its /metrics exposes them.

Generated from a real scrape (shared reference metrics_t0.txt); used by tests/fakes/vllm_serve.py.
Each entry: (type, name, documentation, label names in declaration order, buckets, eager extra label values).
"""
# ruff: noqa: E501
FAMILIES = [
    ('counter', 'vllm:estimated_flops_per_gpu', 'Estimated number of floating point operations per GPU (for Model Flops Utilization calculations).', ('engine', 'model_name'), (), []),
    ('counter', 'vllm:estimated_read_bytes_per_gpu', 'Estimated number of bytes read from memory per GPU (for Model Flops Utilization calculations).', ('engine', 'model_name'), (), []),
    ('counter', 'vllm:estimated_write_bytes_per_gpu', 'Estimated number of bytes written to memory per GPU (for Model Flops Utilization calculations).', ('engine', 'model_name'), (), []),
    ('gauge', 'vllm:num_requests_running', 'Number of requests in model execution batches.', ('engine', 'model_name'), (), []),
    ('gauge', 'vllm:num_requests_waiting', 'Number of requests waiting to be processed.', ('engine', 'model_name'), (), []),
    ('gauge', 'vllm:num_requests_waiting_by_reason', "Number of waiting requests by reason. Reason labels: 'capacity' = waiting for scheduling capacity; 'deferred' = deferred by transient constraints (LoRA budget, KV transfer, blocked status). Sum of all reasons equals vllm:num_requests_waiting.", ('engine', 'model_name', 'reason'), (), [('capacity',), ('deferred',)]),
    ('gauge', 'vllm:engine_sleep_state', 'Engine sleep state; awake = 0 means engine is sleeping; awake = 1 means engine is awake; weights_offloaded = 1 means sleep level 1; discard_all = 1 means sleep level 2.', ('engine', 'model_name', 'sleep_state'), (), [('awake',), ('discard_all',), ('weights_offloaded',)]),
    ('gauge', 'vllm:kv_cache_usage_perc', 'KV-cache usage. 1 means 100 percent usage.', ('engine', 'model_name'), (), []),
    ('counter', 'vllm:prefix_cache_queries', 'Prefix cache queries, in terms of number of queried tokens.', ('engine', 'model_name'), (), []),
    ('counter', 'vllm:prefix_cache_hits', 'Prefix cache hits, in terms of number of cached tokens.', ('engine', 'model_name'), (), []),
    ('counter', 'vllm:external_prefix_cache_queries', 'External prefix cache queries from KV connector cross-instance cache sharing, in terms of number of queried tokens.', ('engine', 'model_name'), (), []),
    ('counter', 'vllm:external_prefix_cache_hits', 'External prefix cache hits from KV connector cross-instance cache sharing, in terms of number of cached tokens.', ('engine', 'model_name'), (), []),
    ('counter', 'vllm:mm_cache_queries', 'Multi-modal cache queries, in terms of number of queried items.', ('engine', 'model_name'), (), []),
    ('counter', 'vllm:mm_cache_hits', 'Multi-modal cache hits, in terms of number of cached items.', ('engine', 'model_name'), (), []),
    ('counter', 'vllm:num_preemptions', 'Cumulative number of preemption from the engine.', ('engine', 'model_name'), (), []),
    ('counter', 'vllm:prompt_tokens', 'Number of prefill tokens processed.', ('engine', 'model_name'), (), []),
    ('counter', 'vllm:prompt_tokens_by_source', 'Number of prompt tokens by source.', ('engine', 'model_name', 'source'), (), [('external_kv_transfer',), ('local_cache_hit',), ('local_compute',)]),
    ('counter', 'vllm:prompt_tokens_cached', 'Number of cached prompt tokens (local + external).', ('engine', 'model_name'), (), []),
    ('counter', 'vllm:prompt_tokens_cached_by_source', 'Prefix-cache hit tokens by the cache tier that supplied them: device (local HBM), host (offloaded to DRAM), disk, p2p (transferred from another vLLM instance) or external_unspecified. Counted at admission; sums to vllm:prefix_cache_hits + vllm:external_prefix_cache_hits.', ('engine', 'model_name', 'source'), (), [('device',), ('disk',), ('external_unspecified',), ('host',), ('p2p',)]),
    ('counter', 'vllm:generation_tokens', 'Number of generation tokens processed.', ('engine', 'model_name'), (), []),
    ('counter', 'vllm:request_success', 'Count of successfully processed requests.', ('engine', 'finished_reason', 'model_name'), (), [('abort',), ('error',), ('length',), ('repetition',), ('stop',)]),
    ('counter', 'vllm:admission_rejections', 'Number of admission attempts rejected by a queue limit, by reason.', ('model_name', 'reason'), (), [('max_num_queued_reqs',), ('max_num_queued_tokens',)]),
    ('histogram', 'vllm:request_prompt_tokens', 'Number of prefill tokens processed.', ('engine', 'model_name'), (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0), []),
    ('histogram', 'vllm:request_generation_tokens', 'Number of generation tokens processed.', ('engine', 'model_name'), (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0), []),
    ('histogram', 'vllm:iteration_tokens_total', 'Histogram of number of tokens per engine_step.', ('engine', 'model_name'), (1.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0), []),
    ('histogram', 'vllm:request_max_num_generation_tokens', 'Histogram of maximum number of requested generation tokens.', ('engine', 'model_name'), (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0), []),
    ('histogram', 'vllm:request_params_n', 'Histogram of the n request parameter.', ('engine', 'model_name'), (1.0, 2.0, 5.0, 10.0, 20.0), []),
    ('histogram', 'vllm:request_params_max_tokens', 'Histogram of the max_tokens request parameter.', ('engine', 'model_name'), (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0), []),
    ('histogram', 'vllm:time_to_first_token_seconds', 'Histogram of time to first token in seconds.', ('engine', 'model_name'), (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0), []),
    ('histogram', 'vllm:inter_token_latency_seconds', 'Histogram of inter-token latency in seconds.', ('engine', 'model_name'), (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0), []),
    ('histogram', 'vllm:request_time_per_output_token_seconds', 'Histogram of time_per_output_token_seconds per request.', ('engine', 'model_name'), (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0), []),
    ('histogram', 'vllm:e2e_request_latency_seconds', 'Histogram of e2e request latency in seconds.', ('engine', 'model_name'), (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0), []),
    ('histogram', 'vllm:request_queue_time_seconds', 'Histogram of time spent in WAITING phase for request.', ('engine', 'model_name'), (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0), []),
    ('histogram', 'vllm:request_inference_time_seconds', 'Histogram of time spent in RUNNING phase for request.', ('engine', 'model_name'), (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0), []),
    ('histogram', 'vllm:request_prefill_time_seconds', 'Histogram of time spent in PREFILL phase for request.', ('engine', 'model_name'), (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0), []),
    ('histogram', 'vllm:request_decode_time_seconds', 'Histogram of time spent in DECODE phase for request.', ('engine', 'model_name'), (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0), []),
    ('histogram', 'vllm:request_num_preemptions', 'Histogram of the number of times a request was preempted.', ('engine', 'model_name'), (1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 20.0), []),
    ('histogram', 'vllm:request_prefill_kv_computed_tokens', 'Histogram of new KV tokens computed during prefill (excluding cached tokens).', ('engine', 'model_name'), (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0), []),
    ('counter', 'http_requests', 'Total number of requests by method, status and handler.', ('handler', 'method', 'status'), (), []),
    ('summary', 'http_request_size_bytes', 'Content length of incoming requests by handler. Only value of header is respected. Otherwise ignored. No percentile calculated.', ('handler',), (), []),
    ('summary', 'http_response_size_bytes', 'Content length of outgoing responses by handler. Only value of header is respected. Otherwise ignored. No percentile calculated.', ('handler',), (), []),
    ('histogram', 'http_request_duration_highr_seconds', 'Latency with many buckets but no API specific labels. Made for more accurate percentile calculations.', (), (0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 7.5, 10.0, 30.0, 60.0), []),
    ('histogram', 'http_request_duration_seconds', 'Latency with only few buckets by handler. Made to be only used if aggregation by handler is important.', ('handler', 'method'), (0.1, 0.5, 1.0), []),
]

# 0.33 families that the real vLLM 0.26.0 (../shared/reference/vllm-0.26-real/metrics1.txt) does not expose;
# 0.26 has none the list above lacks.
NOT_IN_026 = {"vllm:admission_rejections", "vllm:prompt_tokens_cached_by_source", "vllm:request_num_preemptions"}
