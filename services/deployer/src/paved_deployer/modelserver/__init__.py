"""A model server speaking the KServe Open Inference Protocol v2 (JSON) for one model version.

`python -m paved_deployer.modelserver --name N --version V --model-file F --signature-file S
--digest sha256:... --host 127.0.0.1 --port P`
"""
