#!/usr/bin/env python3
"""Makes real LLM SDK calls (the official `openai` and `anthropic` packages) against a base URL.

Usage: sdk_calls.py BASE_URL|PORT CA_FILE SCENARIO [SCENARIO...]
With a bare PORT the clients use the real hosts (https://api.openai.com:PORT/v1,
https://api.anthropic.com:PORT), resolved to 127.0.0.1 inside this process only.
Scenarios: openai-chat, openai-chat-stream, openai-chat-stream-nousage, openai-responses,
openai-responses-stream, openai-embeddings, openai-error, anthropic, anthropic-stream, traced
(openai-chat with a W3C traceparent header). Prints one JSON line per scenario with what the SDK
saw, so a test can compare it with what the tracer reported.

The API keys are canaries: a test greps every tracer output for them.
"""

import json
import os
import socket
import sys

import warnings

import anthropic
import openai

CANARY_OPENAI = os.environ.get("CANARY_OPENAI_KEY", "test-canary-openai-0000")
CANARY_ANTHROPIC = os.environ.get("CANARY_ANTHROPIC_KEY", "test-canary-anthropic-0000")
warnings.simplefilter("ignore", DeprecationWarning)  # model deprecation notices from the SDK
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
MESSAGES = [{"role": "system", "content": "be brief"},
            {"role": "user", "content": "say hello to the tracer please"}]


def resolve_to_loopback(names):
    """Makes this process resolve `names` (e.g. api.openai.com) to 127.0.0.1, so the SDK talks to
    the local fake server with the real provider host in its URL, Host header and TLS SNI."""
    real = socket.getaddrinfo

    def fake(host, *args, **kwargs):
        return real("127.0.0.1" if host in names else host, *args, **kwargs)

    socket.getaddrinfo = fake


def main():
    base, ca, scenarios = sys.argv[1], sys.argv[2], sys.argv[3:]
    # BASE may be "https://127.0.0.1:PORT" or "PORT" (then the real provider hosts are used).
    if base.isdigit():
        resolve_to_loopback({"api.openai.com", "api.anthropic.com"})
        oa_base, an_base = "https://api.openai.com:%s/v1" % base, "https://api.anthropic.com:%s" % base
    else:
        oa_base, an_base = base + "/v1", base
    oa = openai.OpenAI(base_url=oa_base, api_key=CANARY_OPENAI, max_retries=0,
                       http_client=openai.DefaultHttpxClient(verify=ca))
    an = anthropic.Anthropic(base_url=an_base, api_key=CANARY_ANTHROPIC, max_retries=0,
                             http_client=anthropic.DefaultHttpxClient(verify=ca))
    for sc in scenarios:
        out = {"scenario": sc, "pid": os.getpid()}
        if sc == "openai-chat":
            r = oa.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, temperature=0.5,
                                           max_tokens=64, top_p=0.9, seed=7)
            out.update(id=r.id, model=r.model, input=r.usage.prompt_tokens,
                       output=r.usage.completion_tokens, finish=r.choices[0].finish_reason)
        elif sc in ("openai-chat-stream", "openai-chat-stream-nousage"):
            kw = {} if sc.endswith("nousage") else {"stream_options": {"include_usage": True}}
            s = oa.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                           extra_headers={"x-fake-chunks": "8"}, **kw)
            finish, usage, rid, model = None, None, None, None
            for ch in s:
                rid, model = ch.id, ch.model
                if ch.choices and ch.choices[0].finish_reason:
                    finish = ch.choices[0].finish_reason
                if ch.usage:
                    usage = ch.usage
            out.update(id=rid, model=model, finish=finish,
                       input=usage.prompt_tokens if usage else None,
                       output=usage.completion_tokens if usage else None)
        elif sc == "openai-responses":
            r = oa.responses.create(model="gpt-4.1-mini", input="tell me a story", max_output_tokens=50)
            out.update(id=r.id, model=r.model, input=r.usage.input_tokens, output=r.usage.output_tokens,
                       finish=r.status)
        elif sc == "openai-responses-stream":
            final = None
            with oa.responses.stream(model="gpt-4.1-mini", input="tell me a story",
                                     extra_headers={"x-fake-chunks": "6"}) as s:
                for _ in s:
                    pass
                final = s.get_final_response()
            out.update(id=final.id, model=final.model, input=final.usage.input_tokens,
                       output=final.usage.output_tokens, finish=final.status)
        elif sc == "openai-embeddings":
            r = oa.embeddings.create(model="text-embedding-3-small", input=["one two", "three"])
            out.update(model=r.model, input=r.usage.prompt_tokens, count=len(r.data))
        elif sc == "openai-error":
            try:
                oa.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                           extra_headers={"x-fake-status": "429"})
                out["error"] = None
            except openai.APIStatusError as e:
                out.update(error=e.code, status=e.status_code)
        elif sc == "anthropic":
            r = an.messages.create(model="claude-sonnet-4-5", max_tokens=100, messages=MESSAGES[1:],
                                   system="be brief", extra_body={"temperature": 0.2, "top_k": 5})
            out.update(id=r.id, model=r.model, input=r.usage.input_tokens, output=r.usage.output_tokens,
                       cache_read=r.usage.cache_read_input_tokens,
                       cache_creation=r.usage.cache_creation_input_tokens, finish=r.stop_reason)
        elif sc == "anthropic-stream":
            with an.messages.stream(model="claude-sonnet-4-5", max_tokens=100, messages=MESSAGES[1:],
                                    extra_headers={"x-fake-chunks": "7"}) as s:
                for _ in s:
                    pass
                m = s.get_final_message()
            out.update(id=m.id, model=m.model, input=m.usage.input_tokens, output=m.usage.output_tokens,
                       cache_read=m.usage.cache_read_input_tokens,
                       cache_creation=m.usage.cache_creation_input_tokens, finish=m.stop_reason)
        elif sc == "traced":
            r = oa.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                           extra_headers={"traceparent": TRACEPARENT})
            out.update(id=r.id, model=r.model, traceparent=TRACEPARENT)
        else:
            raise SystemExit("unknown scenario %s" % sc)
        print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
