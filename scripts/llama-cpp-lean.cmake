# Included by CMake right after llama.cpp's project() call when install-models.sh builds
# llama-cpp-python (CMAKE_PROJECT_llama.cpp_INCLUDE). llama-cpp-python forces the cache
# entry LLAMA_BUILD_COMMON on, but its Python package loads only libllama and libggml*:
# the "common" library (chat parsers, argument handling, an HTTP client) is built and never
# shipped. A directory variable of the same name wins over the cache entry inside
# llama.cpp's own directory, so common (and the cpp-httplib it needs) is not compiled:
# 74 compile steps instead of 127; libllama and libggml are built as before.
set(LLAMA_BUILD_COMMON OFF)
