"""The UI's wording of library error codes and of the settings' help texts, in English and Chinese.

`agent/` raises `AgentError(message, fix, code=..., params=...)`; the pages show the
entry for `code` here, filled with `params` (see `i18n.error_text`). An error without an
entry shows its library message. Placeholders inside backticks are shown verbatim.
"""

from __future__ import annotations

# code -> language -> (message, fix)
ERRORS: dict[str, dict[str, tuple[str, str]]] = {
    # ---- Ollama and the chat model
    "ollama_unreachable": {
        "en": ("Cannot reach Ollama at `{host}`.",
               "Start it with `ollama serve` (or the Ollama app), or set OLLAMA_HOST to where it runs."),
        "zh": ("无法连接 Ollama（`{host}`）。", "请用 `ollama serve`（或 Ollama 应用）启动它，或把 OLLAMA_HOST 设为它运行的地址。")},
    "ollama_timeout": {
        "en": ("Ollama at `{host}` did not answer within {seconds} s.",
               "Raise the request timeout in Settings; a first answer on a CPU can take minutes."),
        "zh": ("Ollama（`{host}`）在 {seconds} 秒内没有应答。", "请在设置中调高请求超时；在 CPU 上，第一个回答可能需要几分钟。")},
    "ollama_cut": {
        "en": ("The connection to Ollama broke off in the middle of the answer.",
               "Check that the server still runs (`ollama ps`), then ask again."),
        "zh": ("与 Ollama 的连接在回答中途断开。", "请确认服务仍在运行（`ollama ps`），然后重新提问。")},
    "ollama_busy": {
        "en": ("Ollama is busy: its queue is full.", "Wait a moment and ask again."),
        "zh": ("Ollama 正忙：队列已满。", "请稍等片刻再提问。")},
    "ollama_error": {
        "en": ("Ollama answered with an error: {detail}", "Check the Ollama server log, then try again."),
        "zh": ("Ollama 返回了错误：{detail}", "请查看 Ollama 服务日志，然后重试。")},
    "ollama_unexpected": {
        "en": ("Unexpected error talking to Ollama: {detail}", "Check the Ollama server log."),
        "zh": ("与 Ollama 通信时出现意外错误：{detail}", "请查看 Ollama 服务日志。")},
    "collection_busy": {
        "en": ("Collection “{collection}” is being written (an upload or a re-index).",
               "Try again when it has finished; nothing was deleted."),
        "zh": ("文档集“{collection}”正在写入（上传或重建索引）。", "请在完成后重试；没有删除任何内容。")},
    "model_not_found": {
        "en": ("The model `{model}` is not installed in Ollama.",
               "Download it (Settings, or `ollama pull {model}`), or pick an installed model."),
        "zh": ("Ollama 中没有安装模型 `{model}`。", "请下载它（在设置页，或运行 `ollama pull {model}`），或选择已安装的模型。")},
    "model_no_tools": {
        "en": ("The model `{model}` does not support tool calling.",
               "Set Mode to “always retrieve” in Settings, or use a model with tools, such as llama3.2."),
        "zh": ("模型 `{model}` 不支持工具调用。", "请在设置中把模式改为“每次都检索”，或使用支持工具的模型（如 llama3.2）。")},
    "agent_needs_tools": {
        "en": ("The model `{model}` does not support tool calling, which agent mode needs.",
               "Set Mode to “auto” or “always retrieve” in Settings, or use a model with tools, such as llama3.2."),
        "zh": ("模型 `{model}` 不支持工具调用，而智能体模式需要它。",
               "请在设置中把模式改为“自动”或“每次都检索”，或使用支持工具的模型（如 llama3.2）。")},
    "no_backend": {
        "en": ("Ollama is not reachable and the embedded offline model is not installed.",
               "Start Ollama (`ollama serve`), or install the embedded model with the README's set-up command."),
        "zh": ("无法连接 Ollama，且没有安装内置离线模型。", "请启动 Ollama（`ollama serve`），或按 README 中的安装命令安装内置模型。")},
    "context_too_small": {
        "en": ("The question and its excerpts do not fit the model's context window "
               "({budget} tokens after the room for the answer).",
               "Shorten the question, or raise the context window (num_ctx) in Settings."),
        "zh": ("问题和摘录超出了模型的上下文长度（留出回答空间后为 {budget} 个词元）。", "请缩短问题，或在设置中调大上下文长度（num_ctx）。")},
    "empty_question": {
        "en": ("The question is empty.", "Type a question about your documents."),
        "zh": ("问题为空。", "请输入一个关于文档的问题。")},
    "stopped": {"en": ("Stopped by the user.", ""), "zh": ("已按你的要求停止。", "")},
    "unexpected": {"en": ("Unexpected error: {detail}", ""), "zh": ("意外错误：{detail}", "")},
    "no_result": {"en": ("The answer ended without a result.", "Ask again."),
                  "zh": ("回答意外结束，没有结果。", "请重新提问。")},
    # ---- model downloads
    "pull_no_name": {"en": ("No model name was given.", "Type a name such as llama3.2 or qwen3:4b."),
                     "zh": ("没有填写模型名称。", "请输入名称，例如 llama3.2 或 qwen3:4b。")},
    "pull_unknown": {"en": ("Ollama's library has no model `{model}`.",
                            "Check the name on ollama.com/library (e.g. llama3.2, qwen3:4b)."),
                     "zh": ("Ollama 模型库中没有 `{model}`。", "请在 ollama.com/library 上核对名称（例如 llama3.2、qwen3:4b）。")},
    "pull_bad_name": {"en": ("`{model}` is not a valid model name.", "Use a name such as llama3.2 or qwen3:4b."),
                      "zh": ("`{model}` 不是有效的模型名称。", "请使用类似 llama3.2 或 qwen3:4b 的名称。")},
    "pull_failed": {"en": ("The download of `{model}` failed: {detail}", "Try again."),
                    "zh": ("下载 `{model}` 失败：{detail}", "请重试。")},
    # ---- collections and documents
    "embedding_mismatch": {
        "en": ("The collection “{collection}” was built with the embedding model `{built}`, "
               "but the settings use `{configured}`: mixing them would give wrong results.",
               "Re-index it on the Documents page (or `python -m agent reindex --collection {collection}`), "
               "or switch the embedding setting back."),
        "zh": ("文档集“{collection}”是用向量模型 `{built}` 建立的，而当前设置使用 `{configured}`：混用会得到错误的结果。",
               "请在“文档”页重建索引（或运行 `python -m agent reindex --collection {collection}`），或把向量模型设置改回去。")},
    "invalid_collection_name": {"en": ("“{name}” cannot be a collection name.",
                                       "Use 1-64 letters, digits, spaces, - _ . (not starting with a dot)."),
                                "zh": ("“{name}”不能用作文档集名称。", "请使用 1-64 个字母、数字、空格或 - _ .（不能以点开头）。")},
    "doc_too_large": {"en": ("{file} is {size}, larger than the {limit} limit.",
                             "Split it into smaller files, or raise the size limit in Settings."),
                      "zh": ("{file} 有 {size}，超过了 {limit} 的上限。", "请拆分成较小的文件，或在设置中调高大小上限。")},
    "doc_too_many_pages": {"en": ("{file} has {pages} pages, more than the limit of {limit}.",
                                  "Split it into smaller files, or raise the page limit in Settings."),
                           "zh": ("{file} 有 {pages} 页，超过了 {limit} 页的上限。", "请拆分成较小的文件，或在设置中调高页数上限。")},
    "doc_encrypted": {"en": ("{file} is password-protected.", "Enter its password, or add an unprotected copy."),
                      "zh": ("{file} 受密码保护。", "请输入它的密码，或添加一个未加密的副本。")},
    "doc_wrong_password": {"en": ("That password does not open {file}.", "Check the password and try again."),
                           "zh": ("该密码无法打开 {file}。", "请检查密码后重试。")},
    "doc_damaged": {"en": ("{file} could not be read: the file is damaged beyond repair.",
                           "Open it in a PDF viewer, save or export it again, then add it again."),
                    "zh": ("无法读取 {file}：文件已损坏，无法修复。", "请在 PDF 阅读器中打开它，重新保存或导出后再添加。")},
    "doc_blank": {"en": ("{file} has no text: its pages are blank.", "Check that this is the right file."),
                  "zh": ("{file} 没有文字：页面是空白的。", "请确认选择了正确的文件。")},
    "doc_scanned_no_ocr": {"en": ("{file} has no text layer (a scan?).",
                                  "Turn on OCR of scanned pages in Settings so its pages are read as images."),
                           "zh": ("{file} 没有文字层（扫描件？）。", "请在设置中打开“对扫描页做 OCR”，以便把页面当作图像识别。")},
    # ---- settings
    "setting_pinned": {"en": ("This setting is fixed by the environment variable {vars}.",
                              "Unset that variable to change it here; nothing was saved."),
                       "zh": ("此设置由环境变量 {vars} 固定。", "取消该变量后才能在此修改；未保存任何内容。")},
    "invalid_setting": {"en": ("{label} is not valid: {reason}", "Nothing was saved."),
                        "zh": ("{label}无效：{reason}", "未保存任何内容。")},
    "invalid_chunk_overlap": {"en": ("The chunk overlap must be smaller than the chunk size.", "Nothing was saved."),
                              "zh": ("分块重叠必须小于分块大小。", "未保存任何内容。")},
    "invalid_ollama_host": {"en": ("“{value}” is not an address Ollama can be reached at.",
                                   "Write it as http://HOST:PORT, e.g. http://127.0.0.1:11434. Nothing was saved."),
                            "zh": ("“{value}”不是可用的 Ollama 地址。", "请写成 http://主机:端口，例如 http://127.0.0.1:11434。未保存任何内容。")},
    "invalid_keep_alive": {"en": ("“{value}” is not a duration.",
                                  "Use seconds or a duration such as 30s, 5m, 1h (-1: always). Nothing was saved."),
                           "zh": ("“{value}”不是有效的时长。", "请填写秒数或时长，例如 30s、5m、1h（-1 表示一直保留）。未保存任何内容。")},
    "invalid_embedding": {"en": ("“{value}” is not an embedding model.",
                                 "Choose local, or ollama:NAME for an Ollama embedding model. Nothing was saved."),
                          "zh": ("“{value}”不是向量模型。", "请选择 local，或用 ollama:名称 指定 Ollama 向量模型。未保存任何内容。")},
    # ---- prompts (shown after the prompt's name)
    "prompt_empty": {"en": ("The prompt is empty.", ""), "zh": ("提示词为空。", "")},
    "prompt_missing": {"en": ("It must contain `{missing}`.", ""), "zh": ("必须包含 `{missing}`。", "")},
    "prompt_unknown": {"en": ("`{unknown}` cannot be used here (allowed: `{allowed}`).", ""),
                       "zh": ("此处不能使用 `{unknown}`（可用：`{allowed}`）。", "")},
    "prompt_missing_unknown": {"en": ("It must contain `{missing}`, and `{unknown}` cannot be used here "
                                      "(allowed: `{allowed}`).", ""),
                               "zh": ("必须包含 `{missing}`，且此处不能使用 `{unknown}`（可用：`{allowed}`）。", "")},
    "prompt_braces": {"en": ("A brace is not closed.", "Write literal braces doubled: `{{{{` and `}}}}`."),
                      "zh": ("有未闭合的花括号。", "字面花括号请写成两个：`{{{{` 和 `}}}}`。")},
    "prompt_bad_placeholder": {"en": ("`{placeholder}` is not a placeholder.",
                                      "Use names such as `{{question}}`, or double braces for literal text."),
                               "zh": ("`{placeholder}` 不是有效的占位符。", "请使用 `{{question}}` 这样的名称，字面花括号请写两个。")},
    "prompt_placeholder_format": {"en": ("Write `{plain}` instead of `{placeholder}`.",
                                         "Placeholders take no conversions or format options."),
                                  "zh": ("请把 `{placeholder}` 写成 `{plain}`。", "占位符不能带转换或格式选项。")},
    # ---- hostile servers (issue 14)
    "ollama_malformed": {
        "en": ("The server at `{host}` sent a reply this app cannot read.",
               "Check that OLLAMA_HOST points at an Ollama server and that the model works (`ollama run`)."),
        "zh": ("`{host}` 上的服务器返回了本应用无法读取的回复。", "请确认 OLLAMA_HOST 指向 Ollama 服务器，且模型可用（`ollama run`）。")},
    "empty_answer": {
        "en": ("The model `{model}` returned no answer.", "Ask again, or pick another model in Settings."),
        "zh": ("模型 `{model}` 没有给出回答。", "请重新提问，或在设置中选择其他模型。")},
    "embedding_not_found": {
        "en": ("The embedding model `{model}` is not installed in Ollama at `{host}`.",
               "Run `ollama pull {model}`, or choose another embedding in Settings."),
        "zh": ("嵌入模型 `{model}` 未安装在 Ollama（`{host}`）中。", "请运行 `ollama pull {model}`，或在设置中选择其他嵌入模型。")},
    "embedding_unreachable": {
        "en": ("Cannot reach Ollama at `{host}` for the embedding model `{model}`.",
               "Start it with `ollama serve`, or set OLLAMA_HOST to where it runs."),
        "zh": ("无法连接 Ollama（`{host}`）以使用嵌入模型 `{model}`。", "请用 `ollama serve` 启动它，或把 OLLAMA_HOST 设为它运行的地址。")},
    "embedding_invalid": {
        "en": ("The embedding model returned unusable vectors (wrong count, wrong length or not numbers).",
               "Check the embedding model in Settings, or re-index with a working one."),
        "zh": ("嵌入模型返回了无效的向量（数量、长度或数值不对）。", "请在设置中检查嵌入模型，或用可用的模型重建索引。")},
    "embedding_failed": {
        "en": ("The embedding model `{model}` at `{host}` failed: {detail}", "Check the Ollama server log, then retry."),
        "zh": ("`{host}` 上的嵌入模型 `{model}` 出错：{detail}", "请查看 Ollama 服务日志，然后重试。")},
    "line_too_long": {
        "en": ("The server at `{host}` sent a reply line over {mb} MB; the answer was cut there.",
               "Check the server: Ollama's reply lines are a few hundred bytes."),
        "zh": ("`{host}` 上的服务器发送了超过 {mb} MB 的一行回复，回答已在此截断。", "请检查服务器：Ollama 的每行回复只有几百字节。")},
    "answer_deadline": {
        "en": ("The answer took longer than {seconds} s and was cut there.",
               "Raise the answer time limit in Settings, or ask a narrower question."),
        "zh": ("回答用时超过 {seconds} 秒，已在此截断。", "请在设置中调高回答时限，或提一个更具体的问题。")},
    # ---- Ollama pool (issue 18.5)
    "embedding_pool_mixed": {
        "en": ("The Ollama hosts do not all have the same embedding model `{model}`: {hosts}.",
               "Run `ollama pull {model}` on every host of `AGENT_OLLAMA_HOSTS` so they hold the same build."),
        "zh": ("各 Ollama 服务上的嵌入模型 `{model}` 不一致：{hosts}。",
               "请在 `AGENT_OLLAMA_HOSTS` 的每个服务上运行 `ollama pull {model}`，使它们使用同一版本。")},
    # ---- unsafe documents (issue 14.4)
    "doc_bomb": {
        "en": ("{file} holds compressed data that expands to more than {limit} (a decompression bomb?), "
               "so it was not opened.", "If the file is genuine, re-export it (e.g. print it to PDF) and add it again."),
        "zh": ("{file} 含有解压后超过 {limit} 的压缩数据（解压炸弹？），因此没有打开。",
               "如果文件是正常的，请重新导出（例如打印为 PDF）后再添加。")},
    "doc_unsafe": {
        "en": ("{file} could not be read safely: the PDF reader failed on it.",
               "Open it in a PDF viewer and re-save or print it to PDF, then add it again."),
        "zh": ("无法安全地读取 {file}：PDF 阅读器在处理它时出错。", "请在 PDF 阅读器中打开它，重新保存或打印为 PDF 后再添加。")},
}

# Settings field -> language -> tooltip on the Settings page (plain words, no internal names).
FIELD_HELP: dict[str, dict[str, str]] = {
    "ollama_host": {"en": "Where the Ollama server runs (OLLAMA_HOST).", "zh": "Ollama 服务的地址（OLLAMA_HOST）。"},
    "backend": {"en": "Auto uses Ollama when it answers, else the embedded offline model.",
                "zh": "“自动”在 Ollama 可用时使用它，否则使用内置离线模型。"},
    "chat_model": {"en": "The Ollama model that writes the answers.", "zh": "生成回答的 Ollama 模型。"},
    "mode": {"en": "Agent: the model decides when to search. Always retrieve: search before every answer.",
             "zh": "智能体：由模型决定何时检索。每次都检索：每次回答前都检索。"},
    "keep_alive": {"en": "How long Ollama keeps the model in memory after an answer (5m, 1h; -1: always).",
                   "zh": "回答后 Ollama 把模型保留在内存中的时间（5m、1h；-1 表示一直保留）。"},
    "request_timeout": {"en": "Seconds to wait for Ollama; a first answer on a CPU can be slow.",
                        "zh": "等待 Ollama 的秒数；在 CPU 上第一个回答可能较慢。"},
    "temperature": {"en": "Higher gives more varied answers; low keeps them close to the documents.",
                    "zh": "越高回答越多样；越低越贴近文档。"},
    "num_ctx": {"en": "How many tokens the model reads at once: question, excerpts and history.",
                "zh": "模型一次能读取的词元数：问题、摘录和对话历史。"},
    "num_predict": {"en": "The longest answer, in tokens.", "zh": "回答的最大长度（词元）。"},
    "repeat_penalty": {"en": "Discourages the model from repeating itself.", "zh": "抑制模型重复自己。"},
    "memory_turns": {"en": "How many earlier questions and answers the model remembers.",
                     "zh": "模型记住的前几轮问答数。"},
    "retrieval_k": {"en": "How many excerpts are searched for each question.", "zh": "每个问题检索的摘录数。"},
    "hybrid": {"en": "Combine keyword search with meaning-based (vector) search.", "zh": "把关键词检索与语义（向量）检索结合起来。"},
    "embedding": {"en": "The model that turns text into vectors for search. Changing it needs a re-index.",
                  "zh": "把文本变成检索向量的模型。更改后需要重建索引。"},
    "ocr": {"en": "Read scanned pages (pages without text) as images.", "zh": "把扫描页（没有文字的页面）当作图像识别。"},
    "chunk_size": {"en": "Characters per excerpt stored in the index.", "zh": "索引中每个片段的字符数。"},
    "chunk_overlap": {"en": "Characters neighbouring excerpts share.", "zh": "相邻片段共享的字符数。"},
    "max_upload_mb": {"en": "The largest file accepted, in MB.", "zh": "可接受的最大文件（MB）。"},
    "max_pages": {"en": "The most pages accepted in one file.", "zh": "单个文件可接受的最多页数。"},
    "answer_style": {"en": "Quotes are the document's own sentences with their citation numbers, shown at once; "
                           "auto quotes first with the offline model and lets an Ollama model answer alone.",
                     "zh": "引用是文档中的原句及其编号，立即显示；“自动”在离线模型下先给出引用，使用 Ollama 模型时只给模型的回答。"},
    "answer_language": {"en": "Auto answers in the language of the question.", "zh": "“自动”用提问的语言回答。"},
    "ui_language": {"en": "Language of this interface (auto: the browser's).", "zh": "本界面的语言（自动：跟随浏览器）。"},
    "system_prompt": {"en": "Instructions the model gets before every conversation.", "zh": "每次对话前给模型的指令。"},
    "answer_prompt": {"en": "How the question and the excerpts are put to the model.", "zh": "如何把问题和摘录交给模型。"},
    "rewrite_prompt": {"en": "How a follow-up question is turned into a search query.", "zh": "如何把追问改写成检索查询。"},
    # ---- hostile servers (issue 14)
    "max_answer_chars": {"en": "A longer answer is cut at this many characters, with a note.",
                         "zh": "超过此字符数的回答会被截断并附上说明。"},
    "answer_timeout_s": {"en": "Longest time one answer may take, in seconds; it is cut there.",
                         "zh": "单个回答最多可用的时间（秒），超时即截断。"},
    "max_searches": {"en": "After this many searches the model answers from the excerpts it found.",
                     "zh": "检索达到此次数后，模型用已找到的摘录作答。"},
    # ---- pool
    "ollama_hosts": {"en": "Several Ollama servers, comma-separated: each question goes to the least busy live one. "
                           "Empty: the host above.",
                     "zh": "多个 Ollama 服务地址，用逗号分隔：每个问题交给最空闲的可用服务。留空：使用上面的地址。"},
    # ---- team store (issue 18)
    "store": {"en": "local: this computer's data folder. PostgreSQL: conversations shared by every app instance "
                    "using the same database.",
              "zh": "本地：本机的数据文件夹。PostgreSQL：使用同一数据库的所有应用实例共享对话。"},
    "database_url": {"en": "Address of the PostgreSQL database, e.g. postgresql://user@/db?host=/run/dir.",
                     "zh": "PostgreSQL 数据库地址（格式见 README）。"},
}
