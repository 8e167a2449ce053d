"""`python main.py spec|check|discover|read ...`, the same as the `source-sp-invoices` script."""

from source_sp_invoices.run import run

if __name__ == "__main__":
    run()
