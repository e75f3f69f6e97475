"""`hearth engine`: Hearth's local engines (llama.cpp chat models, the MiniLM embedder) as
their own OpenAI-compatible server, so a CPU node pool serves models and `hearth serve`
pods hold none. The gateway reaches it as an `openai`-kind engine."""
