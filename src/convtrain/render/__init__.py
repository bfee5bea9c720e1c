"""Drawing tools every picture and page uses: figures.py (one figure saver), html_page.py (one page writer)."""
