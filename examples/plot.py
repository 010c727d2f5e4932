# A plot from sandbox code: `mcpruntime exec --outputs out examples/plot.py`
# prints the figure's text and saves the image as out/output-1.png.
import matplotlib.pyplot as plt

months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun"]
units = [12, 19, 15, 24, 30, 27]
plt.figure(figsize=(6, 3.5))
plt.bar(months, units, color="#4c78a8")
plt.title("Units sold per month")
plt.ylabel("units")
plt.show()
