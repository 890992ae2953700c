# 借助第三方的模块
import socket
import subprocess
import struct

def run_cmd(cmd):
    obj = subprocess.Popen(
        # 需要执行的命令
        cmd,
        # 执行的事 shell 命令行
        shell=True,
        # 将执行正确的结果放入管道中
        stdout=subprocess.PIPE,
        # 将执行错误的结果放入管道中
        stderr=subprocess.PIPE,
        # 对结果进行编码
        encoding="utf-8"
    )
    # 返回的结果
    true_result = obj.stdout.read()
    false_result = obj.stderr.read()

    return true_result if true_result else false_result


server = socket.socket(family=socket.AF_INET, type=socket.SOCK_STREAM, proto=0)
addr = "127.0.0.1"
prot = 9696
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # 就是它，在bind前加
server.bind((addr, prot))
server.listen(5)
while True:
    # 用来获取到不同的客户端连接对象
    client_socket, client_addr = server.accept()
    print(f"客户端地址：{client_addr}")
    while True:
        try:
            # 持续的和当前链接好的客户端进行交互
            data_from_client = client_socket.recv(1024)
            # 判断客户端是否已经断开连接 如果客户端断开连接则这里接收到的数据是 空 就会一直循环
            if not data_from_client:
                break

            cmd = data_from_client.decode()
            if cmd == "q":
                break

            print(f"data_from_client :>>>> {cmd}")

            # 获取当前命令的结果
            data_to_client = run_cmd(cmd)

            # 将结果转为二进制数据
            data_to_client_bytes = data_to_client.encode("utf-8")

            # 统计二进制数据的大小
            data_to_client_bytes_len = len(data_to_client_bytes)
            print(data_to_client_bytes_len)

            # 用 struct 模块将上面的 字节总数 打包成四个字节的二进制数据
            data_to_client_bytes_len_bytes = struct.pack('i', data_to_client_bytes_len) # b'\xdb\x10\x00\x00'

            # 再去发送数据
            client_socket.send(data_to_client_bytes_len_bytes)
            client_socket.send(data_to_client_bytes)
            '''
            # 将当前数据大小的数字转为字符串后再转为二进制才能在 tcp 中传输
            data_to_client_bytes_len_bytes = str(data_to_client_bytes_len).encode()
            
            # 发送
            # 先发送当前数据的大小
            client_socket.send(data_to_client_bytes_len_bytes)
            # 再发送当前总数据
            client_socket.send(data_to_client_bytes)
            '''


        except Exception as e:
            break
    client_socket.close()
server.close()
