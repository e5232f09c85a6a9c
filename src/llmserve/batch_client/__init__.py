"""The client side of batch processing: ``llmserve batch run`` (see ``llmserve.cli.batch``).

``lines`` reads and writes OpenAI's batch line formats, ``output`` appends/resumes/compacts the output
file, ``direct`` sends lines itself, ``via_api`` hands them to the server's Batch API, ``summary`` and
``progress`` report, and ``run`` ties one run together.
"""
