import spprof

@spprof.profile(output_path="compute.json")
def heavy_computation():
    # This function will be profiled
    result = 0
    for i in range(10_000_000):
        result += i
    return result

print(heavy_computation())  # Profile saved automatically
